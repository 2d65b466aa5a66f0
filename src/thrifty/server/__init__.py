"""The OpenAI-compatible gateway: ``thrifty serve`` (needs ``pip install 'thrifty[server]'``)."""

from thrifty.server.app import app_from_env, create_app
from thrifty.server.config import GatewayConfig, load_config, parse_config

__all__ = ["GatewayConfig", "app_from_env", "create_app", "load_config", "parse_config"]
