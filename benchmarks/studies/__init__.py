"""Built-in study files, installed as ``cutbench.studies`` so ``cutbench run quick`` works anywhere."""
