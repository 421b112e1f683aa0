# Every target creates the virtualenv and installs requirements first, so that a fresh
# machine needs nothing but Python 3.10+ (with venv) and make.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: install demo test test-long test-legacy bench figures figures-foresight figures-layerprune clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@echo "Creating $(VENV) and installing the requirements (TensorFlow included): about 2.5 min on a fresh clone;"
	@echo "pip is quiet until it is done. Later make targets skip this step."
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements-dev.txt
	$(PIP) install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# Quick DropNet experiment on scikit-learn's embedded digits: Model A, six metrics, 3 seeds.
demo: $(STAMP)
	$(PY) paper_experiments/dropnet/00_demo_digits_model_a.py --out runs/demo --figures figures

# Every DropNet figure that fits on a CPU, at quick scale, on the offline stand-ins:
# Fashion-MNIST for the MNIST experiments, Fashion-MNIST padded to 32x32x3 for CIFAR-10.
DROPNET_MNIST := 04_1_1_fig03_model_a_fc40_fc40_mnist 04_1_2_fig04_model_a_fc20_fc40_mnist \
	04_1_3_fig05_model_a_fc40_fc20_mnist 05_1_fig13_oracle_model_a_fc20_fc20_mnist \
	06_1_fig15_init_model_a_fc20_fc20_mnist 07_1_fig18_pruning_fraction_model_a_fc20_fc20_mnist \
	04_2_1_fig06_model_b_conv64_conv64_mnist 04_2_2_fig07_model_b_conv32_conv64_mnist \
	04_2_3_fig08_model_b_conv64_conv32_mnist 05_2_fig14_oracle_model_b_conv20_conv20_mnist \
	06_2_fig16_init_model_b_conv64_conv64_mnist 07_2_fig19_pruning_fraction_model_b_conv64_conv64_mnist
DROPNET_CIFAR := 04_3_1_fig09_figA5_figA2_model_c_conv64_64_128_128_cifar10 \
	06_3_fig17_init_model_c_conv64_64_128_128_cifar10 07_3_fig20_pruning_fraction_model_c_conv64_64_128_128_cifar10
figures: $(STAMP)
	@for s in $(DROPNET_MNIST); do \
		$(PY) paper_experiments/dropnet/$$s.py --scale quick --dataset fashion_mnist || exit 1; done
	@for s in $(DROPNET_CIFAR); do \
		$(PY) paper_experiments/dropnet/$$s.py --scale quick --dataset fashion_mnist_rgb32 || exit 1; done
	$(PY) paper_experiments/dropnet/quick_results_table.py

# Foresight (pruning-at-init) figures and tables at quick scale on Fashion-MNIST (the offline
# stand-in for MNIST): thesis Figs. 4.11-4.13 and SNIP Tables 1 and 3, Figs. 2 and 4.
FORESIGHT := 01_thesis_4_2_3_figs_4_11_4_13_cnn_mnist 04_snip_table1_fig1_lenet300_mnist \
	05_snip_table1_fig1_lenet5_caffe_mnist 07_snip_fig2_connections_lenet300_mnist \
	09_snip_fig4_random_labels_lenet5_caffe_mnist
figures-foresight: $(STAMP)
	@for s in $(FORESIGHT); do \
		$(PY) paper_experiments/foresight/$$s.py --scale quick --dataset fashion_mnist || exit 1; done
	@for m in lenet_300_100 lenet5_caffe lstm_s gru_s; do \
		$(PY) paper_experiments/foresight/08_snip_table3_initialisations.py --model $$m --scale quick --dataset fashion_mnist || exit 1; done
	$(PY) paper_experiments/results_pages.py foresight

# LayerPrune supplement Tables 1-3 and Figs. 1-3 at quick scale on Fashion-MNIST padded to
# 32x32x3 (the offline CIFAR-10 stand-in): ResNet-20 and VGG19-BN at 1/8 width.
LAYERPRUNE := 01_table1_iterative_vs_oneshot_resnet56 02_table2_spearman_imprinting_resnet56 \
	03_table3_architectures_vgg19_bn 04_fig1_latency_vs_accuracy_resnet56 05_figs2_3_block_importance_resnet56
figures-layerprune: $(STAMP)
	@for s in $(LAYERPRUNE); do \
		$(PY) paper_experiments/layerprune/$$s.py --scale quick --dataset fashion_mnist_rgb32 || exit 1; done
	$(PY) paper_experiments/results_pages.py layerprune

# Full suite with Keras 3, then the tests marked `both_keras` again under tf-keras.  Two
# pytest-xdist workers, each test file on one worker (--dist loadfile: a file's module fixtures
# are built once), each worker's TensorFlow on one intra-op thread so that two workers do not
# oversubscribe two cores (set here for the test run only, not by the library).  A line per
# test file when its last test finishes (tests/conftest.py), the ten slowest tests at the end.
TEST_ENV := TF_CPP_MIN_LOG_LEVEL=3 TF_NUM_INTRAOP_THREADS=1
PYTEST := $(PY) -m pytest -p no:cacheprovider -n 2 --dist loadfile
# make test: every test but the end-to-end runs marked slow (Keras 3, then the both_keras
# tests under tf-keras). make test-long: the slow ones. CI runs both.
test: $(STAMP)
	$(TEST_ENV) $(PYTEST) --durations=10 -m "not slow" tests
	$(TEST_ENV) TF_USE_LEGACY_KERAS=1 $(PYTEST) -q --durations=10 -m "both_keras and not slow" tests

test-long: $(STAMP)
	$(TEST_ENV) $(PYTEST) --durations=10 -m slow tests
	$(TEST_ENV) TF_USE_LEGACY_KERAS=1 $(PYTEST) -q --durations=10 -m "both_keras and slow" tests

bench: $(STAMP)
	$(PY) bench/bench_iterative_cycle.py --cycles 3 --json bench/results/iterative_cycle_cpu.json
	$(PY) bench/bench_xla_cpu.py --json bench/results/xla_cpu.json
	$(PY) bench/bench_oracle.py
	$(PY) bench/bench_foresight_scoring.py
	$(PY) bench/bench_compaction_latency.py
	$(PY) bench/bench_applications_groups.py
	$(PY) bench/bench_applications_compaction.py

clean:
	rm -rf $(VENV) runs .pytest_cache
