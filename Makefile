# Convenience wrappers; tasks.py is the real entry point (python3 tasks.py --help).
PYTHON ?= python3

.PHONY: demo test services bench lock

demo:
	$(PYTHON) tasks.py demo

test:
	$(PYTHON) tasks.py test $(ARGS)

services:
	$(PYTHON) tasks.py services

bench:
	$(PYTHON) tasks.py bench $(ARGS)

lock:
	$(PYTHON) tasks.py lock $(ARGS)
