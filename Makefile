# receiptd — the two commands of the README (make run, make test) and their helpers.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= demo/receiptd.toml

.PHONY: install run test test-clocks check format bench mutation mutation-integration clean deploy-tools browser install-chromium test-deploy-debian

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when the dependency set changes; the stamp keeps `make test` fast.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt -e '.[test]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/receiptd demo init --dir .receiptd/demo
	$(BIN)/receiptd serve --config $(CONFIG)

check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: check deploy-tools browser
	$(BIN)/pytest -q
	@$(MAKE) --no-print-directory test-clocks

# tests/deploy/ renders k8s/ with `kubectl kustomize`. The machine's kubectl when it has one;
# otherwise Debian's kubernetes-client (kubectl 1.20, whose kustomize v2 k8s/ is written for),
# unpacked under .venv/tools rather than installed system-wide: nobody's kubectl is replaced
# and only `apt-get update`, on a machine whose package lists are empty, needs root.
KUBECTL_DEBIAN := $(VENV)/tools/kubernetes-client/usr/bin/kubectl

deploy-tools:
	@command -v kubectl >/dev/null 2>&1 || $(MAKE) --no-print-directory $(KUBECTL_DEBIAN)

$(KUBECTL_DEBIAN):
	@echo "kubectl: unpacking Debian's kubernetes-client into $(VENV)/tools"
	@command -v apt-get >/dev/null || { echo "no kubectl and no apt-get: install kubectl"; exit 1; }
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; chmod 755 "$$tmp"; \
	get() { (cd "$$tmp" && apt-get download -q -o APT::Sandbox::User=root kubernetes-client); }; \
	get || { apt-get update -q && get; }; \
	rm -rf $(VENV)/tools/kubernetes-client; mkdir -p $(VENV)/tools; \
	dpkg-deb -x "$$tmp"/kubernetes-client_*.deb $(VENV)/tools/kubernetes-client; \
	$@ version --client

# tests/browser/ drive the operator console in Debian's chromium through Playwright (never
# `playwright install`, which downloads a browser build of its own). Installed when missing:
# as root directly, otherwise through sudo when it is there.
CHROMIUM := /usr/bin/chromium

browser:
	@test -x $(CHROMIUM) || $(MAKE) --no-print-directory install-chromium

install-chromium:
	@echo "chromium: installing Debian's chromium for the browser tests"
	@command -v apt-get >/dev/null || { echo "no $(CHROMIUM) and no apt-get: install chromium"; exit 1; }
	@set -e; sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$sudo apt-get install -y -q chromium >/dev/null 2>&1 \
	  || { $$sudo apt-get update -q && $$sudo apt-get install -y -q chromium; }; \
	$(CHROMIUM) --version

# The deploy tests with Debian's kubectl even where another one is installed: k8s/ must keep
# rendering with its old kustomize, the one a machine without kubectl gets.
test-deploy-debian: install $(KUBECTL_DEBIAN)
	KUBECTL=$(CURDIR)/$(KUBECTL_DEBIAN) $(BIN)/pytest -q tests/deploy

# The clock check (tests/conftest.py): a representative subset (the Google and Apple
# webhook/purchase flows, the read API, the pure state machine and access rules) run three
# more times. Tests date store data from the injected clock, so they must pass with it
# decades ahead or behind (the Apple test CA is valid 2000-2099), and with the HOST clock a
# year ahead, which catches any test or helper that still reads the wall clock for store
# data while the injected clock stays pinned. The host clock is moved with the prebuilt
# libfaketime.so.1 of the `libfaketime` test dependency. DONT_FAKE_MONOTONIC=1 is needed:
# with a faked monotonic clock pg_ctl (the embedded PostgreSQL start) never returns.
CLOCK_TESTS := \
	tests/unit/test_state.py \
	tests/unit/test_access.py \
	tests/integration/test_read_api.py::test_unknown_customer_reads_as_empty \
	tests/integration/test_read_api.py::test_active_subscription_field_by_field \
	tests/integration/test_read_api.py::test_active_is_evaluated_at_request_time \
	tests/integration/test_read_api.py::test_grace_period_is_active_until_grace_ends \
	tests/integration/test_read_api.py::test_single_entitlement_endpoint \
	tests/e2e/test_google_webhook.py::test_subscription_lifecycles \
	tests/e2e/test_google_webhook.py::test_grace_then_on_hold_then_expired_read_back \
	tests/e2e/test_google_webhook.py::test_revoked_revokes_even_while_the_api_says_active \
	tests/e2e/test_google_webhook.py::test_voided_subscription_revokes_whatever_the_api_says \
	tests/e2e/test_google_webhook.py::test_upgrade_chain_supersedes_the_old_token \
	tests/e2e/test_google_webhook.py::test_unauthenticated_pushes_are_401_and_store_nothing \
	tests/e2e/test_google_webhook.py::test_test_notification_and_refund_review_are_ignored_and_journaled \
	tests/e2e/test_google_products_and_acks.py::test_one_time_non_consumable_grants_for_life_and_is_acknowledged \
	tests/e2e/test_google_products_and_acks.py::test_pending_product_then_cancelled_never_grants \
	tests/e2e/test_google_products_and_acks.py::test_paid_product_read_as_cancelled_is_revoked \
	'tests/e2e/test_google_products_and_acks.py::test_voided_one_time_product[1-processed-False]' \
	tests/e2e/test_google_products_and_acks.py::test_new_subscription_is_acknowledged_with_its_line_item_product \
	tests/e2e/test_google_products_and_acks.py::test_failed_acknowledgement_is_kept_and_retried_later \
	tests/e2e/test_google_products_and_acks.py::test_acknowledgement_is_abandoned_after_the_three_day_window \
	tests/e2e/test_google_purchases.py::test_subscription_is_validated_linked_and_acknowledged \
	tests/e2e/test_google_purchases.py::test_one_time_product_without_a_type_falls_back_to_products_get \
	'tests/e2e/test_apple_webhook.py::test_subscription_lifecycle[fail-grace]' \
	'tests/e2e/test_apple_webhook.py::test_subscription_lifecycle[expire-voluntary]' \
	'tests/e2e/test_apple_webhook.py::test_subscription_lifecycle[refund-reversed]' \
	tests/e2e/test_apple_webhook.py::test_field_by_field_after_cancel \
	tests/e2e/test_apple_webhook.py::test_grace_period_fields \
	tests/e2e/test_apple_webhook.py::test_refund_sets_revoked_at \
	tests/e2e/test_apple_webhook.py::test_late_notification_is_processed_and_changes_nothing \
	tests/e2e/test_apple_purchases.py::test_signed_transaction_is_verified_linked_and_answered \
	tests/e2e/test_apple_purchases.py::test_transaction_id_pulls_status_and_full_history \
	tests/e2e/test_apple_purchases.py::test_grace_period_without_end_date_is_completed_from_the_status_api
FAKETIME_SO := import importlib.util as u, pathlib as p; \
	print(p.Path(u.find_spec("libfaketime").origin).parent / "vendor/libfaketime/src/libfaketime.so.1")

test-clocks: install
	@echo "clock check 1/3: injected clock in 2071"
	@TEST_CLOCK_START=2071-03-01T00:00:00Z $(BIN)/pytest -q $(CLOCK_TESTS)
	@echo "clock check 2/3: injected clock in 2003"
	@TEST_CLOCK_START=2003-03-01T00:00:00Z $(BIN)/pytest -q $(CLOCK_TESTS)
	@echo "clock check 3/3: host clock a year ahead (libfaketime), injected clock as pinned"
	@set -e; lib=$$($(BIN)/python -c '$(FAKETIME_SO)'); \
	fake="env LD_PRELOAD=$$lib FAKETIME=+365d DONT_FAKE_MONOTONIC=1"; \
	ahead=$$(( $$($$fake $(BIN)/python -c 'import time; print(int(time.time()))') - $$(date +%s) )); \
	test $$ahead -gt $$((364 * 86400)) || { echo "libfaketime is not in effect"; exit 1; }; \
	$$fake $(BIN)/pytest -q $(CLOCK_TESTS)

# Mutation testing of the business rules (docs/testing.md "Mutation testing"), run by .ci/run
# after `make test`: mutmut mutates the modules
# listed under [tool.mutmut] only_mutate and runs the pure unit tests against each mutant. Slow
# (minutes), so not part of `make test`. It starts from a fresh mutants/ copy every time, so the
# score is never a stale cache, and fails when the overall score is below MUTATION_MIN percent.
MUTATION_MIN ?= 90

$(VENV)/.installed-mutation: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt -e '.[test,mutation]'
	touch $@

mutation: $(VENV)/.installed-mutation
	rm -rf mutants
	$(BIN)/mutmut run
	$(BIN)/mutmut results --all true | $(BIN)/python tests/mutation_score.py --min $(MUTATION_MIN)

# The same beyond the core (docs/testing.md "Mutation testing"): the operator actions, outbound webhooks,
# the customer API and the console's routes (`integration_only_mutate` under [tool.mutmut]),
# killed by the tests that drive them over HTTP against PostgreSQL and Redis
# (`integration_test_selection`). tests/mutation_servers.py starts both servers once for the
# whole run and exports DATABASE_URL / REDIS_URL; tests/mutation_integration.py runs mutmut
# with that selection. Slower (about half an hour), so a target of its own. It shares
# mutants/ with `make mutation`: whichever ran last is what `mutmut show` finds.
MUTATION_INTEGRATION_MIN ?= 85
MUTMUT_INTEGRATION := $(BIN)/python tests/mutation_integration.py

mutation-integration: $(VENV)/.installed-mutation
	rm -rf mutants
	$(BIN)/python tests/mutation_servers.py $(MUTMUT_INTEGRATION) run
	$(MUTMUT_INTEGRATION) results --all true \
	  | $(BIN)/python tests/mutation_score.py --min $(MUTATION_INTEGRATION_MIN)

bench: install
	$(BIN)/python bench/apple_ingest.py
	$(BIN)/python bench/google_ingest.py
	$(BIN)/python bench/google_play_client.py
	$(BIN)/python bench/read.py
	$(BIN)/python bench/revenue.py

clean:
	rm -rf $(VENV) .receiptd .pytest_cache .mypy_cache .ruff_cache mutants test-artifacts
