"""docs/configuration.md is generated from NodeConfig: every setting has a description, the file
is what the fields give (`make docs` regenerates it), and its example, like the README's, is a
config that loads."""

from __future__ import annotations

import re

from node.config import load_config
from scripts import config_reference

README = config_reference.ROOT / "README.md"


def test_every_setting_of_a_node_is_documented():
    assert config_reference.undocumented() == [], \
        "describe each new setting with setting(...) in node/config.py, then run `make docs`"


def test_the_configuration_reference_is_not_stale():
    assert config_reference.REFERENCE.read_text() == config_reference.render(), \
        "docs/configuration.md is stale: run `make docs`"


def test_the_references_example_is_a_config_that_loads(tmp_path):
    example = re.search(r"```toml\n(.*?)```", config_reference.render(), re.S).group(1)
    (tmp_path / "node.toml").write_text(example)
    config = load_config(tmp_path / "node.toml")
    assert (config.city, config.database) == ("tianjin", tmp_path / "tianjin.duckdb")


def test_the_readmes_example_is_a_config_that_loads(tmp_path):
    """The loader refuses a missing required setting and an unknown key: a setting added to
    NodeConfig without a default, or renamed, fails here until the README's example has it."""
    (example,) = [block for block in re.findall(r"```toml\n(.*?)```", README.read_text(), re.S)
                  if block.startswith("[node]")]
    (tmp_path / "node.toml").write_text(example)
    config = load_config(tmp_path / "node.toml")
    assert (config.city, config.signing_key) == (
        "tianjin", tmp_path / "members" / "tianjin" / "signing.key")
