# The app's statement limits (vulhub/settings.py): bench/run.py lifts them for its own
# process, which does operators' work; the servers it starts keep them.
APP_LIMITS = ("DB_STATEMENT_TIMEOUT_MS", "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS")
