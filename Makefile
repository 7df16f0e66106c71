# `make app`: set up .venv and start the lab; `make test`: set up and run the whole suite.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SHARED ?= ../shared/data
TESTDATA := .cache/data
PORT ?= 8501

.PHONY: app workshop test test-long test-fast bench starter-pack testdata clean

$(PY):
	python3 -m venv $(VENV)

# torch/torchvision are named first with exact versions so pip takes the CPU-usable wheels
# that lie on local disk instead of resolving a different build through another package.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

app: $(STAMP)
	$(VENV)/bin/streamlit run app.py --server.port $(PORT) --server.headless true

# A workshop server on the LAN: every interface, workshop mode on. Set SSLCORE_TEACHER_KEY (and, if you
# like, SSLCORE_WORKSHOP_CODE and SSLCORE_DATA_ROOTS) in the environment first; README "Run a workshop".
workshop: $(STAMP)
	@[ -n "$$SSLCORE_TEACHER_KEY" ] || echo "note: SSLCORE_TEACHER_KEY is not set: the Teacher page stays locked"
	SSLCORE_WORKSHOP=1 $(VENV)/bin/streamlit run app.py --server.port $(PORT) --server.headless true \
	    --server.address 0.0.0.0 --browser.gatherUsageStats false

# Retrain the reference run of every method (assets/starter) after a default changes (about 40 min on 2 cores;
# `.venv/bin/sslcore starter-pack --methods NAME,...` retrains only those).
starter-pack: $(STAMP)
	$(VENV)/bin/sslcore starter-pack

# Real data for tests and benchmarks, when ../shared/data is beside the checkout.
testdata:
	@if [ -d $(SHARED) ]; then \
	  mkdir -p $(TESTDATA)/cifar10; \
	  [ -d $(TESTDATA)/cifar10/train ] || tar -xzf $(SHARED)/cifar10_jpg.tar.gz -C $(TESTDATA)/cifar10; \
	  [ -d $(TESTDATA)/tiny-imagenet-200/val ] || tar -xzf $(SHARED)/tinyimagenet_val.tar.gz -C $(TESTDATA); \
	  [ -d $(TESTDATA)/tiny-imagenet-200/train ] || tar -xzf $(SHARED)/tinyimagenet_train100.tar.gz -C $(TESTDATA); \
	else echo "no $(SHARED): tests that need real data will be skipped"; fi

test: $(STAMP) testdata
	$(PY) -m pytest

# Minutes-long tests that CI leaves out to stay under 20 minutes: every method's default run but jigsaw's, the
# MoCo, DINO, BYOL, rotation, inpainting and MAE short runs and MAE's longer run, relpos, jigsaw and
# colorization read stage by stage, every collapse-lab ablation but SimCLR's, four runs queued at once against
# a solo run, and the Embeddings page scoring a run, its stages, a timeline step and a lab checkpoint beside
# their random init.
test-long: $(STAMP) testdata
	$(PY) -m pytest -m long

test-fast: $(STAMP)
	$(PY) -m pytest -m "not browser and not slow"

bench: $(STAMP) testdata
	$(PY) benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) .cache .pytest_cache
