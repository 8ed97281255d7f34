-- table audit_log
audit_log.id bigint NOT NULL DEFAULT nextval('audit_log_id_seq'::regclass)
audit_log.created_at timestamp with time zone NOT NULL
audit_log.actor text NOT NULL
audit_log.action text NOT NULL
audit_log.app_user_id text NOT NULL
audit_log.request_id text
audit_log.details jsonb NOT NULL DEFAULT '{}'::jsonb
-- table charges
charges.store text NOT NULL
charges.purchase_id text NOT NULL
charges.charge_id text NOT NULL
charges.product_id text NOT NULL
charges.app text
charges.is_sandbox boolean NOT NULL
charges.amount numeric NOT NULL
charges.currency text NOT NULL
charges.charged_at timestamp with time zone NOT NULL
charges.period_end timestamp with time zone
charges.months numeric
charges.refunded_at timestamp with time zone
charges.refunded_amount numeric
charges.created_at timestamp with time zone NOT NULL
-- table console_sessions
console_sessions.token_sha256 bytea NOT NULL
console_sessions.key_name text NOT NULL
console_sessions.csrf_token text NOT NULL
console_sessions.created_at timestamp with time zone NOT NULL
console_sessions.expires_at timestamp with time zone NOT NULL
console_sessions.key_binding bytea
-- table customer_aliases
customer_aliases.alias text NOT NULL
customer_aliases.app_user_id text NOT NULL
customer_aliases.created_at timestamp with time zone NOT NULL DEFAULT now()
-- table customer_consents
customer_consents.app_user_id text NOT NULL
customer_consents.consumption_data boolean NOT NULL
customer_consents.updated_at timestamp with time zone NOT NULL
-- table customer_events
customer_events.id bigint NOT NULL DEFAULT nextval('customer_events_id_seq'::regclass)
customer_events.event_id uuid NOT NULL
customer_events.app_user_id text NOT NULL
customer_events.sequence bigint NOT NULL
customer_events.type text NOT NULL
customer_events.created_at timestamp with time zone NOT NULL DEFAULT now()
customer_events.entitlements jsonb NOT NULL
-- table customers
customers.app_user_id text NOT NULL
customers.created_at timestamp with time zone NOT NULL DEFAULT now()
customers.updated_at timestamp with time zone NOT NULL DEFAULT now()
customers.suspended_at timestamp with time zone
customers.event_sequence bigint NOT NULL DEFAULT 0
customers.snapshot jsonb
customers.erased_at timestamp with time zone
-- table extend_items
extend_items.id bigint NOT NULL DEFAULT nextval('extend_items_id_seq'::regclass)
extend_items.run_id bigint NOT NULL
extend_items.store text NOT NULL
extend_items.key text NOT NULL
extend_items.app text
extend_items.environment text
extend_items.product_id text NOT NULL
extend_items.app_user_id text
extend_items.expires_before timestamp with time zone
extend_items.request_id text NOT NULL
extend_items.status text NOT NULL DEFAULT 'pending'::text
extend_items.detail text NOT NULL DEFAULT ''::text
extend_items.answer jsonb NOT NULL DEFAULT '{}'::jsonb
extend_items.updated_at timestamp with time zone NOT NULL
-- table extend_runs
extend_runs.id bigint NOT NULL DEFAULT nextval('extend_runs_id_seq'::regclass)
extend_runs.arguments jsonb NOT NULL
extend_runs.status text NOT NULL DEFAULT 'running'::text
extend_runs.counts jsonb NOT NULL DEFAULT '{}'::jsonb
extend_runs.started_at timestamp with time zone NOT NULL
extend_runs.updated_at timestamp with time zone NOT NULL
extend_runs.finished_at timestamp with time zone
-- table feed_daily
feed_daily.day date NOT NULL
feed_daily.entitlement text NOT NULL
feed_daily.store text NOT NULL
feed_daily.active_change bigint NOT NULL DEFAULT 0
feed_daily.trials bigint NOT NULL DEFAULT 0
feed_daily.conversions bigint NOT NULL DEFAULT 0
feed_daily.refunds bigint NOT NULL DEFAULT 0
feed_daily.billing_issues bigint NOT NULL DEFAULT 0
-- table grants
grants.id bigint NOT NULL DEFAULT nextval('grants_id_seq'::regclass)
grants.app_user_id text NOT NULL
grants.entitlement text NOT NULL
grants.starts_at timestamp with time zone NOT NULL
grants.expires_at timestamp with time zone
grants.ended_at timestamp with time zone
grants.created_at timestamp with time zone NOT NULL DEFAULT now()
-- table latency_daily
latency_daily.day date NOT NULL
latency_daily.store text NOT NULL
latency_daily.median_seconds double precision
latency_daily.notifications bigint NOT NULL
-- table mrr_daily
mrr_daily.day date NOT NULL
mrr_daily.store text NOT NULL
mrr_daily.currency text NOT NULL
mrr_daily.is_sandbox boolean NOT NULL
mrr_daily.amount numeric NOT NULL DEFAULT 0
mrr_daily.subscriptions bigint NOT NULL DEFAULT 0
-- table offer_signatures
offer_signatures.id bigint NOT NULL DEFAULT nextval('offer_signatures_id_seq'::regclass)
offer_signatures.app_user_id text NOT NULL
offer_signatures.offer text NOT NULL
offer_signatures.product_id text NOT NULL
offer_signatures.format text NOT NULL
offer_signatures.nonce text NOT NULL
offer_signatures.transaction_id text
offer_signatures.eligible boolean
offer_signatures.created_at timestamp with time zone NOT NULL
-- table play_acknowledgements
play_acknowledgements.id bigint NOT NULL DEFAULT nextval('play_acknowledgements_id_seq'::regclass)
play_acknowledgements.kind text NOT NULL
play_acknowledgements.package_name text NOT NULL
play_acknowledgements.product_id text NOT NULL
play_acknowledgements.purchase_token text NOT NULL
play_acknowledgements.created_at timestamp with time zone NOT NULL
play_acknowledgements.attempts integer NOT NULL DEFAULT 0
play_acknowledgements.next_attempt_at timestamp with time zone NOT NULL
play_acknowledgements.last_error text
-- table purchase_owners
purchase_owners.id bigint NOT NULL DEFAULT nextval('purchase_owners_id_seq'::regclass)
purchase_owners.store text NOT NULL
purchase_owners.purchase_id text NOT NULL
purchase_owners.app_user_id text
purchase_owners.notification_id bigint
purchase_owners.purchase_created_at timestamp with time zone NOT NULL
-- table purchases
purchases.id bigint NOT NULL DEFAULT nextval('purchases_id_seq'::regclass)
purchases.store text NOT NULL
purchases.purchase_id text NOT NULL
purchases.app_user_id text
purchases.product_id text NOT NULL
purchases.kind text NOT NULL
purchases.status text NOT NULL
purchases.period_type text NOT NULL
purchases.will_renew boolean NOT NULL
purchases.expires_at timestamp with time zone
purchases.grace_period_expires_at timestamp with time zone
purchases.purchased_at timestamp with time zone
purchases.is_sandbox boolean NOT NULL
purchases.unsubscribe_detected_at timestamp with time zone
purchases.billing_issue_detected_at timestamp with time zone
purchases.revoked_at timestamp with time zone
purchases.ownership text NOT NULL DEFAULT 'purchased'::text
purchases.superseded boolean NOT NULL DEFAULT false
purchases.state jsonb NOT NULL
purchases.state_updated_at timestamp with time zone NOT NULL
purchases.linked_at timestamp with time zone
purchases.created_at timestamp with time zone NOT NULL DEFAULT now()
purchases.updated_at timestamp with time zone NOT NULL DEFAULT now()
purchases.app text
purchases.price_amount text
purchases.price_currency text
-- table reconcile_runs
reconcile_runs.id bigint NOT NULL DEFAULT nextval('reconcile_runs_id_seq'::regclass)
reconcile_runs.store text NOT NULL
reconcile_runs.arguments jsonb NOT NULL
reconcile_runs.since timestamp with time zone
reconcile_runs.until timestamp with time zone NOT NULL
reconcile_runs.position jsonb NOT NULL DEFAULT '{}'::jsonb
reconcile_runs.checked integer NOT NULL DEFAULT 0
reconcile_runs.missing integer NOT NULL DEFAULT 0
reconcile_runs.corrected integer NOT NULL DEFAULT 0
reconcile_runs.failed integer NOT NULL DEFAULT 0
reconcile_runs.started_at timestamp with time zone NOT NULL
reconcile_runs.updated_at timestamp with time zone NOT NULL
reconcile_runs.finished_at timestamp with time zone
reconcile_runs.outcome text
-- table refund_requests
refund_requests.id uuid NOT NULL
refund_requests.store text NOT NULL
refund_requests.notification_id text NOT NULL
refund_requests.app_user_id text
refund_requests.purchase_id text NOT NULL
refund_requests.transaction_id text NOT NULL
refund_requests.product_id text NOT NULL
refund_requests.app text
refund_requests.environment text NOT NULL
refund_requests.reason text
refund_requests.consumption_percentage integer
refund_requests.requested_at timestamp with time zone NOT NULL
refund_requests.deadline timestamp with time zone NOT NULL
refund_requests.preference text
refund_requests.status text NOT NULL DEFAULT 'pending'::text
refund_requests.attempts integer NOT NULL DEFAULT 0
refund_requests.next_attempt_at timestamp with time zone NOT NULL
refund_requests.claimed_until timestamp with time zone
refund_requests.sent_at timestamp with time zone
refund_requests.sent_body jsonb
refund_requests.last_error text
refund_requests.decided_at timestamp with time zone
refund_requests.created_at timestamp with time zone NOT NULL
-- table replay_lines
replay_lines.id bigint NOT NULL DEFAULT nextval('replay_lines_id_seq'::regclass)
replay_lines.run_id bigint NOT NULL
replay_lines.line text NOT NULL
-- table replay_parts
replay_parts.run_id bigint NOT NULL
replay_parts.part integer NOT NULL
replay_parts.position jsonb NOT NULL DEFAULT '{"after": null, "source": 0}'::jsonb
replay_parts.counts jsonb NOT NULL DEFAULT '{}'::jsonb
replay_parts.finished boolean NOT NULL DEFAULT false
replay_parts.pages integer NOT NULL DEFAULT 0
replay_parts.updated_at timestamp with time zone NOT NULL
-- table replay_runs
replay_runs.id bigint NOT NULL DEFAULT nextval('replay_runs_id_seq'::regclass)
replay_runs.arguments jsonb NOT NULL
replay_runs.status text NOT NULL DEFAULT 'running'::text
replay_runs.started_at timestamp with time zone NOT NULL
replay_runs.updated_at timestamp with time zone NOT NULL
replay_runs.finished_at timestamp with time zone
-- table replay_shared_entries
replay_shared_entries.run_id bigint NOT NULL
replay_shared_entries.entry_id bigint NOT NULL
-- table revenue_daily
revenue_daily.day date NOT NULL
revenue_daily.store text NOT NULL
revenue_daily.currency text NOT NULL
revenue_daily.is_sandbox boolean NOT NULL
revenue_daily.gross numeric NOT NULL DEFAULT 0
revenue_daily.refunded numeric NOT NULL DEFAULT 0
revenue_daily.charges bigint NOT NULL DEFAULT 0
revenue_daily.refunds bigint NOT NULL DEFAULT 0
-- table schema_migrations
schema_migrations.version integer NOT NULL
schema_migrations.name text NOT NULL
schema_migrations.applied_at timestamp with time zone NOT NULL DEFAULT now()
-- table store_actions
store_actions.id uuid NOT NULL
store_actions.app_user_id text
store_actions.store text NOT NULL
store_actions.purchase_id text NOT NULL
store_actions.action text NOT NULL
store_actions.request jsonb NOT NULL
store_actions.status text NOT NULL
store_actions.detail text NOT NULL
store_actions.answer jsonb NOT NULL
store_actions.actor text NOT NULL
store_actions.created_at timestamp with time zone NOT NULL
-- table store_notifications
store_notifications.id bigint NOT NULL DEFAULT nextval('store_notifications_id_seq'::regclass)
store_notifications.store text NOT NULL
store_notifications.message_id text NOT NULL
store_notifications.received_at timestamp with time zone NOT NULL DEFAULT now()
store_notifications.notification_type text
store_notifications.subtype text
store_notifications.signed_at timestamp with time zone
store_notifications.purchase_id text
store_notifications.result text NOT NULL
store_notifications.reason text
store_notifications.payload text
store_notifications.payload_pruned_at timestamp with time zone
store_notifications.reads jsonb
store_notifications.purchase_ids ARRAY NOT NULL DEFAULT '{}'::text[]
store_notifications.checkpoint jsonb
store_notifications.app text
-- table webhook_deliveries
webhook_deliveries.endpoint_key text NOT NULL
webhook_deliveries.feed_id bigint NOT NULL
webhook_deliveries.handed_at timestamp with time zone NOT NULL
webhook_deliveries.attempts integer NOT NULL DEFAULT 0
webhook_deliveries.next_attempt_at timestamp with time zone NOT NULL
webhook_deliveries.leased_until timestamp with time zone
webhook_deliveries.last_attempt_at timestamp with time zone
webhook_deliveries.last_error text
-- table webhook_endpoints
webhook_endpoints.endpoint_key text NOT NULL
webhook_endpoints.feed_cursor bigint NOT NULL
webhook_endpoints.created_at timestamp with time zone NOT NULL
webhook_endpoints.last_attempt_at timestamp with time zone
webhook_endpoints.last_success_at timestamp with time zone
webhook_endpoints.last_error text
webhook_endpoints.last_error_at timestamp with time zone
-- constraints
audit_log audit_log_pkey: PRIMARY KEY (id)
charges charges_pkey: PRIMARY KEY (store, purchase_id, charge_id)
console_sessions console_sessions_pkey: PRIMARY KEY (token_sha256)
customer_aliases customer_aliases_app_user_id_fkey: FOREIGN KEY (app_user_id) REFERENCES customers(app_user_id) ON DELETE CASCADE
customer_aliases customer_aliases_pkey: PRIMARY KEY (alias)
customer_consents customer_consents_pkey: PRIMARY KEY (app_user_id)
customer_events customer_events_app_user_id_sequence_key: UNIQUE (app_user_id, sequence)
customer_events customer_events_event_id_key: UNIQUE (event_id)
customer_events customer_events_pkey: PRIMARY KEY (id)
customers customers_pkey: PRIMARY KEY (app_user_id)
extend_items extend_items_pkey: PRIMARY KEY (id)
extend_items extend_items_run_id_fkey: FOREIGN KEY (run_id) REFERENCES extend_runs(id) ON DELETE CASCADE
extend_items extend_items_run_id_store_key_key: UNIQUE (run_id, store, key)
extend_items extend_items_status_check: CHECK ((status = ANY (ARRAY['pending'::text, 'sending'::text, 'requested'::text, 'confirmed'::text, 'refused'::text, 'failed'::text])))
extend_items extend_items_store_check: CHECK ((store = ANY (ARRAY['app_store'::text, 'play_store'::text])))
extend_runs extend_runs_pkey: PRIMARY KEY (id)
extend_runs extend_runs_status_check: CHECK ((status = ANY (ARRAY['running'::text, 'finished'::text, 'abandoned'::text])))
feed_daily feed_daily_pkey: PRIMARY KEY (day, entitlement, store)
grants grants_app_user_id_fkey: FOREIGN KEY (app_user_id) REFERENCES customers(app_user_id) ON DELETE CASCADE
grants grants_pkey: PRIMARY KEY (id)
latency_daily latency_daily_pkey: PRIMARY KEY (day, store)
mrr_daily mrr_daily_pkey: PRIMARY KEY (day, store, currency, is_sandbox)
offer_signatures offer_signatures_pkey: PRIMARY KEY (id)
play_acknowledgements play_acknowledgements_kind_check: CHECK ((kind = ANY (ARRAY['subscription'::text, 'product'::text])))
play_acknowledgements play_acknowledgements_kind_package_name_product_id_purchase_key: UNIQUE (kind, package_name, product_id, purchase_token)
play_acknowledgements play_acknowledgements_pkey: PRIMARY KEY (id)
purchase_owners purchase_owners_pkey: PRIMARY KEY (store, purchase_id, id)
purchase_owners purchase_owners_store_check: CHECK ((store = ANY (ARRAY['app_store'::text, 'play_store'::text])))
purchases purchases_app_user_id_fkey: FOREIGN KEY (app_user_id) REFERENCES customers(app_user_id) ON DELETE SET NULL
purchases purchases_pkey: PRIMARY KEY (id)
purchases purchases_store_check: CHECK ((store = ANY (ARRAY['app_store'::text, 'play_store'::text])))
purchases purchases_store_purchase_id_key: UNIQUE (store, purchase_id)
reconcile_runs reconcile_runs_outcome_check: CHECK ((outcome = ANY (ARRAY['finished'::text, 'abandoned'::text])))
reconcile_runs reconcile_runs_pkey: PRIMARY KEY (id)
reconcile_runs reconcile_runs_store_check: CHECK ((store = ANY (ARRAY['app_store'::text, 'play_store'::text])))
refund_requests refund_requests_pkey: PRIMARY KEY (id)
refund_requests refund_requests_store_notification_id_key: UNIQUE (store, notification_id)
replay_lines replay_lines_pkey: PRIMARY KEY (id)
replay_lines replay_lines_run_id_fkey: FOREIGN KEY (run_id) REFERENCES replay_runs(id) ON DELETE CASCADE
replay_parts replay_parts_pkey: PRIMARY KEY (run_id, part)
replay_parts replay_parts_run_id_fkey: FOREIGN KEY (run_id) REFERENCES replay_runs(id) ON DELETE CASCADE
replay_runs replay_runs_pkey: PRIMARY KEY (id)
replay_runs replay_runs_status_check: CHECK ((status = ANY (ARRAY['running'::text, 'finished'::text, 'abandoned'::text])))
replay_shared_entries replay_shared_entries_pkey: PRIMARY KEY (run_id, entry_id)
replay_shared_entries replay_shared_entries_run_id_fkey: FOREIGN KEY (run_id) REFERENCES replay_runs(id) ON DELETE CASCADE
revenue_daily revenue_daily_pkey: PRIMARY KEY (day, store, currency, is_sandbox)
schema_migrations schema_migrations_pkey: PRIMARY KEY (version)
store_actions store_actions_pkey: PRIMARY KEY (id)
store_notifications store_notifications_pkey: PRIMARY KEY (id)
store_notifications store_notifications_result_check: CHECK ((result = ANY (ARRAY['processed'::text, 'ignored'::text, 'rejected'::text])))
store_notifications store_notifications_store_check: CHECK ((store = ANY (ARRAY['app_store'::text, 'play_store'::text])))
store_notifications store_notifications_store_message_id_key: UNIQUE (store, message_id)
webhook_deliveries webhook_deliveries_endpoint_key_fkey: FOREIGN KEY (endpoint_key) REFERENCES webhook_endpoints(endpoint_key) ON DELETE CASCADE
webhook_deliveries webhook_deliveries_feed_id_fkey: FOREIGN KEY (feed_id) REFERENCES customer_events(id) ON DELETE CASCADE
webhook_deliveries webhook_deliveries_pkey: PRIMARY KEY (endpoint_key, feed_id)
webhook_endpoints webhook_endpoints_pkey: PRIMARY KEY (endpoint_key)
-- indexes
CREATE INDEX audit_log_actor ON public.audit_log USING btree (actor)
CREATE UNIQUE INDEX audit_log_pkey ON public.audit_log USING btree (id)
CREATE INDEX audit_log_user_idx ON public.audit_log USING btree (app_user_id, id)
CREATE UNIQUE INDEX charges_pkey ON public.charges USING btree (store, purchase_id, charge_id)
CREATE INDEX console_sessions_expires_idx ON public.console_sessions USING btree (expires_at)
CREATE UNIQUE INDEX console_sessions_pkey ON public.console_sessions USING btree (token_sha256)
CREATE UNIQUE INDEX customer_aliases_pkey ON public.customer_aliases USING btree (alias)
CREATE INDEX customer_aliases_user_idx ON public.customer_aliases USING btree (app_user_id)
CREATE UNIQUE INDEX customer_consents_pkey ON public.customer_consents USING btree (app_user_id)
CREATE UNIQUE INDEX customer_events_app_user_id_sequence_key ON public.customer_events USING btree (app_user_id, sequence)
CREATE UNIQUE INDEX customer_events_event_id_key ON public.customer_events USING btree (event_id)
CREATE UNIQUE INDEX customer_events_pkey ON public.customer_events USING btree (id)
CREATE UNIQUE INDEX customers_pkey ON public.customers USING btree (app_user_id)
CREATE UNIQUE INDEX extend_items_pkey ON public.extend_items USING btree (id)
CREATE UNIQUE INDEX extend_items_run_id_store_key_key ON public.extend_items USING btree (run_id, store, key)
CREATE UNIQUE INDEX extend_runs_open_idx ON public.extend_runs USING btree (status) WHERE (status = 'running'::text)
CREATE UNIQUE INDEX extend_runs_pkey ON public.extend_runs USING btree (id)
CREATE UNIQUE INDEX feed_daily_pkey ON public.feed_daily USING btree (day, entitlement, store)
CREATE INDEX grants_open ON public.grants USING btree (expires_at) WHERE (ended_at IS NULL)
CREATE UNIQUE INDEX grants_pkey ON public.grants USING btree (id)
CREATE INDEX grants_user_idx ON public.grants USING btree (app_user_id, entitlement)
CREATE UNIQUE INDEX latency_daily_pkey ON public.latency_daily USING btree (day, store)
CREATE UNIQUE INDEX mrr_daily_pkey ON public.mrr_daily USING btree (day, store, currency, is_sandbox)
CREATE INDEX offer_signatures_customer ON public.offer_signatures USING btree (app_user_id, created_at)
CREATE UNIQUE INDEX offer_signatures_pkey ON public.offer_signatures USING btree (id)
CREATE INDEX play_acknowledgements_due_idx ON public.play_acknowledgements USING btree (next_attempt_at)
CREATE UNIQUE INDEX play_acknowledgements_kind_package_name_product_id_purchase_key ON public.play_acknowledgements USING btree (kind, package_name, product_id, purchase_token)
CREATE UNIQUE INDEX play_acknowledgements_pkey ON public.play_acknowledgements USING btree (id)
CREATE INDEX play_acknowledgements_token ON public.play_acknowledgements USING btree (purchase_token)
CREATE UNIQUE INDEX purchase_owners_pkey ON public.purchase_owners USING btree (store, purchase_id, id)
CREATE INDEX purchase_owners_user_idx ON public.purchase_owners USING btree (app_user_id) WHERE (app_user_id IS NOT NULL)
CREATE INDEX purchases_open_expiry_idx ON public.purchases USING btree (expires_at) WHERE (status = ANY (ARRAY['active'::text, 'grace_period'::text, 'billing_retry'::text]))
CREATE UNIQUE INDEX purchases_pkey ON public.purchases USING btree (id)
CREATE INDEX purchases_play_token ON public.purchases USING btree (split_part(purchase_id, '|'::text, 1)) WHERE (store = 'play_store'::text)
CREATE INDEX purchases_running_trials ON public.purchases USING btree (GREATEST(expires_at, grace_period_expires_at)) WHERE ((period_type = 'trial'::text) AND (status = ANY (ARRAY['active'::text, 'grace_period'::text])) AND (NOT superseded))
CREATE UNIQUE INDEX purchases_store_purchase_id_key ON public.purchases USING btree (store, purchase_id)
CREATE INDEX purchases_user_idx ON public.purchases USING btree (app_user_id) WHERE (app_user_id IS NOT NULL)
CREATE INDEX purchases_without_app ON public.purchases USING btree (store) WHERE (app IS NULL)
CREATE UNIQUE INDEX reconcile_runs_open_idx ON public.reconcile_runs USING btree (store) WHERE (finished_at IS NULL)
CREATE UNIQUE INDEX reconcile_runs_pkey ON public.reconcile_runs USING btree (id)
CREATE INDEX reconcile_runs_store_idx ON public.reconcile_runs USING btree (store, id)
CREATE INDEX refund_requests_customer ON public.refund_requests USING btree (app_user_id)
CREATE INDEX refund_requests_due ON public.refund_requests USING btree (next_attempt_at) WHERE (status = 'pending'::text)
CREATE INDEX refund_requests_listing ON public.refund_requests USING btree (((status <> 'pending'::text)), (
CASE
    WHEN (status = 'pending'::text) THEN deadline
    ELSE NULL::timestamp with time zone
END), requested_at DESC, id)
CREATE UNIQUE INDEX refund_requests_pkey ON public.refund_requests USING btree (id)
CREATE INDEX refund_requests_purchase ON public.refund_requests USING btree (store, purchase_id)
CREATE INDEX refund_requests_requested ON public.refund_requests USING btree (requested_at DESC, id)
CREATE UNIQUE INDEX refund_requests_store_notification_id_key ON public.refund_requests USING btree (store, notification_id)
CREATE UNIQUE INDEX replay_lines_pkey ON public.replay_lines USING btree (id)
CREATE INDEX replay_lines_run_idx ON public.replay_lines USING btree (run_id, id)
CREATE UNIQUE INDEX replay_parts_pkey ON public.replay_parts USING btree (run_id, part)
CREATE UNIQUE INDEX replay_runs_open_idx ON public.replay_runs USING btree (status) WHERE (status = 'running'::text)
CREATE UNIQUE INDEX replay_runs_pkey ON public.replay_runs USING btree (id)
CREATE UNIQUE INDEX replay_shared_entries_pkey ON public.replay_shared_entries USING btree (run_id, entry_id)
CREATE UNIQUE INDEX revenue_daily_pkey ON public.revenue_daily USING btree (day, store, currency, is_sandbox)
CREATE UNIQUE INDEX schema_migrations_pkey ON public.schema_migrations USING btree (version)
CREATE INDEX store_actions_customer ON public.store_actions USING btree (app_user_id, created_at)
CREATE UNIQUE INDEX store_actions_pkey ON public.store_actions USING btree (id)
CREATE INDEX store_actions_purchase ON public.store_actions USING btree (store, purchase_id, action, created_at)
CREATE INDEX store_notifications_app ON public.store_notifications USING btree (app, id) WHERE (app IS NOT NULL)
CREATE INDEX store_notifications_journal_order ON public.store_notifications USING btree ((
CASE result
    WHEN 'rejected'::text THEN 0
    WHEN 'ignored'::text THEN 1
    ELSE 2
END), id DESC)
CREATE UNIQUE INDEX store_notifications_pkey ON public.store_notifications USING btree (id)
CREATE INDEX store_notifications_purchase_ids_idx ON public.store_notifications USING gin (purchase_ids) WITH (fastupdate=off)
CREATE INDEX store_notifications_purchase_store_idx ON public.store_notifications USING btree (purchase_id, store)
CREATE INDEX store_notifications_received_at ON public.store_notifications USING btree (received_at)
CREATE INDEX store_notifications_received_idx ON public.store_notifications USING btree (received_at) WHERE (payload IS NOT NULL)
CREATE UNIQUE INDEX store_notifications_store_message_id_key ON public.store_notifications USING btree (store, message_id)
CREATE INDEX store_notifications_type ON public.store_notifications USING btree (notification_type) WHERE (notification_type IS NOT NULL)
CREATE INDEX store_notifications_without_app ON public.store_notifications USING btree (store) WHERE (app IS NULL)
CREATE INDEX webhook_deliveries_due ON public.webhook_deliveries USING btree (endpoint_key, next_attempt_at)
CREATE UNIQUE INDEX webhook_deliveries_pkey ON public.webhook_deliveries USING btree (endpoint_key, feed_id)
CREATE UNIQUE INDEX webhook_endpoints_pkey ON public.webhook_endpoints USING btree (endpoint_key)
