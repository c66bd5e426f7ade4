"""What anyone may see: the pet's page, its portrait, the health check, the language."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from flask import (
    Blueprint,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)

from webapp import state
from webapp.health import health
from webapp.i18n import LANG_COOKIE, LANGUAGES
from webapp.security import safe_next

bp = Blueprint("public", __name__)

BUNDLED_PORTRAIT = Path(__file__).with_name("static") / "pet.jpg"


@bp.route("/")
def home():
    """The public pet page; until an owner account exists it says how to make one."""
    current = state()
    pet = current.config.pet
    age = date.today().year - pet.birth_year if pet.birth_year else None
    return render_template("home.html", pet=pet, age=age, has_owner=current.accounts.any())


@bp.route("/pet.jpg")
def portrait():
    """The public portrait from config: a chosen picture, never a camera photo."""
    chosen = state().config.pet.photo
    path = Path(chosen) if chosen else BUNDLED_PORTRAIT
    if not path.is_file():
        path = BUNDLED_PORTRAIT
    return send_file(path, mimetype="image/jpeg", max_age=3600, conditional=True)


@bp.route("/healthz")
def healthz():
    """200 while photos keep coming, 503 when the newest is too old; nothing else."""
    fresh = not health(state().store.latest())["late"]
    response = jsonify(status="ok" if fresh else "stale")
    response.status_code = 200 if fresh else 503
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/lang", methods=["POST"])
def switch_language():
    """Remember the chosen language in a cookie and go back where the visitor was."""
    chosen = request.form.get("lang", "")
    target = safe_next(request.form.get("next")) or url_for("public.home")
    response = make_response(redirect(target))
    if chosen in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE, chosen, max_age=365 * 86400, samesite="Lax", httponly=True,
            secure=request.is_secure,
        )  # fmt: skip
    return response
