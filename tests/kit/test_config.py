from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path

import pytest

from services.kit.config import ConfigError, Secret, ServiceConfig, load_config


@dataclass(frozen=True)
class DemoConfig(ServiceConfig):
    service_name = "demo"
    port: int = 1234
    ratio: float = 0.5
    enabled: bool = False
    tags: tuple[str, ...] = ()
    token: Secret = Secret("default")
    base: Path = Path("x")


def test_service_specific_variables_win_over_mesh_wide_ones():
    env = {"VIARTE_PORT": "1", "VIARTE_DEMO_PORT": "2", "VIARTE_LOG_LEVEL": "DEBUG"}
    config = load_config(DemoConfig, env)
    assert config.port == 2 and config.log_level == "DEBUG" and config.ratio == 0.5


def test_types_are_parsed():
    env = {"VIARTE_DEMO_RATIO": "1.5", "VIARTE_DEMO_ENABLED": "yes", "VIARTE_DEMO_TAGS": "a, b,", "VIARTE_DEMO_BASE": "/tmp"}
    config = load_config(DemoConfig, env)
    assert (config.ratio, config.enabled, config.tags, config.base) == (1.5, True, ("a", "b"), Path("/tmp"))


def test_secrets_come_from_files_and_never_print(tmp_path):
    secret_file = tmp_path / "token"
    secret_file.write_text("s3cr3t\n")
    config = load_config(DemoConfig, {"VIARTE_DEMO_TOKEN_FILE": str(secret_file)})
    assert config.token.reveal() == "s3cr3t"
    assert "s3cr3t" not in repr(config) and "s3cr3t" not in str(config.token)


def test_bad_values_name_the_variable():
    with pytest.raises(ConfigError, match="VIARTE_DEMO_PORT"):
        load_config(DemoConfig, {"VIARTE_DEMO_PORT": "eighty"})
    with pytest.raises(ConfigError, match="VIARTE_DEMO_ENABLED"):
        load_config(DemoConfig, {"VIARTE_DEMO_ENABLED": "maybe"})


def test_config_is_frozen():
    with pytest.raises(FrozenInstanceError):
        DemoConfig().port = 3  # type: ignore[misc]
