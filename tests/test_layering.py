"""The two packages depend in one direction, and the app starts without heavy imports."""

from __future__ import annotations

import subprocess
import sys


def imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return {name.split(".")[0] for name in out.split()}


def test_core_never_imports_textual_or_the_app():
    modules = imported_after("import carexpert, carexpert.config, carexpert.runs, carexpert.cli.main")
    assert "textual" not in modules and "carexpert_tui" not in modules


def test_app_package_does_not_import_torch_at_start():
    modules = imported_after("import carexpert_tui, carexpert_tui.app")
    for heavy in ("torch", "transformers", "peft", "bitsandbytes", "datasets"):
        assert heavy not in modules, heavy


def test_core_never_imports_the_web_stack():
    """`carexpert serve` is an optional extra: nothing but starting a server imports FastAPI or uvicorn."""
    modules = imported_after("import carexpert, carexpert.config, carexpert.cli.main, carexpert.chat, "
                             "carexpert.serve, carexpert.serve.status, carexpert.serve.scheduler, "
                             "carexpert.serve.models, carexpert.cli.serve_cmd; "
                             "carexpert.cli.main.build_parser()")
    for web in ("fastapi", "uvicorn", "starlette"):
        assert web not in modules, web
    served = imported_after("import carexpert.serve.app")
    assert "fastapi" in served  # the check above can fail: the server module does pull the stack in
