"""Config files: TOML in, frozen dataclass out, errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from federation.errors import ConfigError
from node.config import load_config

TRUST = ('manifest = "manifest.json"\nroot_public_key = "root/root.pub"\n'
         'tls_certificate = "t.pem"\ntls_private_key = "t.key"\ntls_ca = "root/ca.pem"\n'
         'signing_key = "s.key"\n')


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text + (TRUST if "database" in text else ""))
    return path


def test_a_minimal_config_gets_defaults_and_paths_beside_the_file(tmp_path):
    config = load_config(write(tmp_path, '[node]\ncity = "tianjin"\ndatabase = "t.duckdb"\n'))
    assert config.city == "tianjin"
    assert config.database == tmp_path / "t.duckdb"
    assert config.manifest == tmp_path / "manifest.json"
    assert config.admin_socket_path == tmp_path / "t.admin.sock"
    assert config.state_path == tmp_path / "t.state"
    assert config.policy is None
    assert config.listen == "127.0.0.1:7401" and config.threads == 2


def test_a_config_without_trust_material_is_refused(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text('[node]\ncity = "tianjin"\ndatabase = "t.duckdb"\n')
    with pytest.raises(ConfigError, match="missing key 'manifest'"):
        load_config(path)


@pytest.mark.parametrize(("text", "says"), [
    ('[node]\ncity = "tianjin"\n', "missing key 'database'"),
    ('[node]\ncity = "tianjin"\ndatabase = "t"\nthread = 4\n', "unknown key 'thread'"),
    ('[node]\ncity = "tianjin"\ndatabase = "t"\nthreads = "4"\n',
     "key 'threads' must be of type int"),
    ('[node]\ncity = "tianjin"\ndatabase = "t"\nthreads = 0\n', "must be ≥ 1"),
    ('[node]\ncity = "Tian_Jin"\ndatabase = "t"\n', "member id"),
    ('[node\ncity = "x"\ndatabase', "not valid TOML"),
    ('[node]\ncity = "tianjin"\ndatabase = "t"\nstore = "spark"\nspark_master = "local[1]"\n'
     'spark_count_cache_seconds = -1.0\n', "spark_count_cache_seconds must be 0"),
])
def test_a_bad_config_names_the_file_and_the_key(tmp_path, text, says):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert str(path) in str(refused.value) and says in str(refused.value)


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")


def test_the_per_caller_limit_defaults_to_a_quarter_and_stays_below_the_workers(tmp_path):
    config = load_config(write(tmp_path, '[node]\ncity = "tianjin"\ndatabase = "t.duckdb"\n'))
    assert config.per_caller_limit == config.max_concurrent_rpcs // 4 < config.max_workers
    small = load_config(write(tmp_path, '[node]\ncity = "tianjin"\ndatabase = "t.duckdb"\n'
                                        'max_workers = 4\nmax_concurrent_rpcs = 64\n'))
    assert small.per_caller_limit == 2  # at most half the threads
    with pytest.raises(ConfigError, match="one caller must never hold every thread"):
        load_config(write(tmp_path, '[node]\ncity = "tianjin"\ndatabase = "t.duckdb"\n'
                                    'max_workers = 8\nmax_concurrent_per_caller = 8\n'))
