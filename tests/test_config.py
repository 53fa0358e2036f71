"""Config files: TOML in, frozen dataclass out, errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from federation.errors import ConfigError
from federation.members import load_region
from node.config import load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def test_a_minimal_config_gets_defaults_and_a_database_beside_the_file(tmp_path):
    config = load_config(write(tmp_path, '[node]\ncity = "tianjin"\ndatabase = "t.duckdb"\n'))
    assert config.city == "tianjin"
    assert config.database == tmp_path / "t.duckdb"
    assert config.admin_socket_path == tmp_path / "t.admin.sock"
    assert config.listen == "127.0.0.1:7401" and config.threads == 2


@pytest.mark.parametrize(("text", "says"), [
    ('[node]\ncity = "tianjin"\n', "missing key 'database'"),
    ('[node]\ncity = "tianjin"\ndatabase = "t"\nthread = 4\n', "unknown key 'thread'"),
    ('[node]\ncity = "tianjin"\ndatabase = "t"\nthreads = "4"\n',
     "key 'threads' must be of type int"),
    ('[node]\ncity = "tianjin"\ndatabase = "t"\nthreads = 0\n', "must be ≥ 1"),
    ('[node]\ncity = "tian jin"\ndatabase = "t"\n', "member id"),
    ('[node\ncity = "x"', "not valid TOML"),
])
def test_a_bad_config_names_the_file_and_the_key(tmp_path, text, says):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert str(path) in str(refused.value) and says in str(refused.value)


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")


def test_a_region_file_lists_unique_members(tmp_path):
    path = tmp_path / "region.toml"
    path.write_text('[region]\nname = "r"\n[[members]]\nid = "a"\nendpoint = "h:1"\n'
                    '[[members]]\nid = "a"\nendpoint = "h:2"\n')
    with pytest.raises(ConfigError, match="unique"):
        load_region(path)
    path.write_text('[[members]]\nid = "a"\nendpoint = "h:1"\nport = 3\n')
    with pytest.raises(ConfigError, match=r"\[\[members\]\] #1 unknown key 'port'"):
        load_region(path)
