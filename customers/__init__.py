"""Operator and customer-management routes (contract §3 "Operators and internal services")."""
