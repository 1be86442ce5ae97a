# The README's two commands. Both create or update .venv first (scripts/bootstrap.sh).
.PHONY: run test env

env:
	./scripts/bootstrap.sh

run: env
	.venv/bin/gymnast run

test: env
	./scripts/test.sh
