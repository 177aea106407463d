"""Configs: dataclass schema, YAML loading with presets and ``--set`` overrides."""

from weakseg.config.io import config_from_dict, dump_yaml, load_config, to_dict
from weakseg.config.schema import Config

__all__ = ["Config", "config_from_dict", "dump_yaml", "load_config", "to_dict"]
