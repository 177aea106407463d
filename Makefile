# Two entry points, both self-contained on a fresh Linux machine (docs/install.md):
#   make demo   -> create .venv, install torch then weakseg, run the demo on embedded MNIST digits
#   make test   -> same set-up plus nnU-Net v2's verifier (--no-deps, torch checked unchanged), then the test suite
# Which torch build: `pip install torch==$(TORCH_VERSION)` gives what this machine's pip resolves (on an ordinary
# Linux machine the CUDA build from PyPI; here a local CPU wheel). For the CPU-only build anywhere:
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
# For a given CUDA build: TORCH_INDEX=https://download.pytorch.org/whl/cu128 (see pytorch.org for the list).
PYTHON        ?= python3
VENV          ?= .venv
TORCH_VERSION ?= 2.13.0
TORCH_INDEX   ?=
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The torch build installed first ("<version> <CUDA version or cpu>"), recorded so that later installs can be
# checked against it: whatever build the user chose, nothing may replace it behind their back.
TORCH_BUILD := $(VENV)/.torch-build
TORCH_ID    := $(PY) -c "import torch; print(torch.__version__, torch.version.cuda or 'cpu')"
CHECK_TORCH  = now="$$($(TORCH_ID))"; was="$$(cat $(TORCH_BUILD))"; \
               if [ "$$now" != "$$was" ]; then echo "torch was replaced: installed $$was, now $$now (a dependency \
               installed since pulled another torch); run make clean, then make again" >&2; exit 1; fi
# A .venv made before the record existed (its torch was checked by the earlier guard): record what it has.
RECORD_TORCH = test -s $(TORCH_BUILD) || $(TORCH_ID) > $(TORCH_BUILD)
# nnU-Net v2's dataset-integrity check, run by tests/data/brats/test_export.py. A plain
# `pip install nnunetv2` pulls timm -> torchvision -> another (multi-GB CUDA) torch replacing the one installed,
# so nnunetv2 goes in with --no-deps plus exactly the packages its verifier imports (found by importing
# nnunetv2.experiment_planning.verify_dataset_integrity in a bare venv), pinned.
NNUNET_STAMP    := $(VENV)/.nnunet-verifier
NNUNET_VERIFIER := nnunetv2==2.8.1 batchgenerators==0.25.5 acvl_utils==0.2.6 scikit-image==0.26.0 \
                   lazy_loader==0.6 tifffile==2026.3.3 blosc2==4.14.1 numexpr==2.14.2 msgpack==1.2.4 \
                   ndindex==1.10.1 httpx==0.28.1 idna==3.20

.PHONY: demo test install check-torch clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned, so that weakseg's open `torch>=2.8` is already satisfied and pulls nothing
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(TORCH_ID) > $(TORCH_BUILD)
	$(PY) -m pip install --quiet -e ".[test]"
	$(CHECK_TORCH)
	touch $(STAMP)

$(NNUNET_STAMP): $(STAMP)
	$(RECORD_TORCH)
	$(PY) -m pip install --quiet --no-deps $(NNUNET_VERIFIER)
	$(CHECK_TORCH)
	$(PY) -c "import nnunetv2.experiment_planning.verify_dataset_integrity"
	touch $(NNUNET_STAMP)

install: $(STAMP)

check-torch:
	@$(RECORD_TORCH)
	@$(CHECK_TORCH)
	@echo "torch unchanged since install: $$(cat $(TORCH_BUILD))"

demo: $(STAMP)
	$(VENV)/bin/weakseg demo

test: $(STAMP) $(NNUNET_STAMP)
	$(RECORD_TORCH)
	$(CHECK_TORCH)
	WEAKSEG_REQUIRE_NNUNET=1 $(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs
