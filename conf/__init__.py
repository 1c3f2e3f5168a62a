"""The stage configs, installed as the subpackage ``torchgeo_simclr.conf``.

pyproject.toml maps this folder to it, so a wheel carries the YAML files and
an editable install finds them here; the commands locate them with
``torchgeo_simclr.cli.training.config_dir``.
"""
