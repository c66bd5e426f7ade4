"""Flask extensions, created once and bound to an app in ``create_app``."""

from __future__ import annotations

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

db = SQLAlchemy()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
# In-process counters: the web app runs as one waitress process; limits reset on restart.
limiter = Limiter(key_func=get_remote_address, storage_uri="memory://", headers_enabled=True)
