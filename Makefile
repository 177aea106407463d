# Two entry points, both self-contained on a fresh machine (2 CPU cores, no GPU):
#   make demo   -> create .venv, install torch (CPU build) then weakseg, run the demo on embedded MNIST digits
#   make test   -> same set-up plus nnU-Net v2's verifier (--no-deps, CPU torch checked), then the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# nnU-Net v2's dataset-integrity check, run by tests/data/formats/test_nnunet_raw.py. A plain
# `pip install nnunetv2` pulls timm -> torchvision -> a multi-GB CUDA torch replacing the CPU build, so
# nnunetv2 goes in with --no-deps plus exactly the packages its verifier imports (found by importing
# nnunetv2.experiment_planning.verify_dataset_integrity in a bare venv), pinned.
NNUNET_STAMP    := $(VENV)/.nnunet-verifier
NNUNET_VERIFIER := nnunetv2==2.8.1 batchgenerators==0.25.5 acvl_utils==0.2.6 scikit-image==0.26.0 \
                   lazy_loader==0.6 tifffile==2026.3.3 blosc2==4.14.1 numexpr==2.14.2 msgpack==1.2.4 \
                   ndindex==1.10.1 httpx==0.28.1 idna==3.20
CHECK_TORCH     := $(PY) -c "import sys, torch; v = torch.__version__; \
                   sys.exit(0 if v == '2.13.0+cpu' else 'torch is ' + v + ', expected the CPU build 2.13.0+cpu')"

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned to the local CPU build; a bare requirement would pull a multi-GB CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

$(NNUNET_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --no-deps $(NNUNET_VERIFIER)
	$(CHECK_TORCH)
	$(PY) -c "import nnunetv2.experiment_planning.verify_dataset_integrity"
	touch $(NNUNET_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/weakseg demo

test: $(STAMP) $(NNUNET_STAMP)
	$(CHECK_TORCH)
	WEAKSEG_REQUIRE_NNUNET=1 $(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs
