import types

import llmledger


def test_public_names_are_exactly_the_documented_ones() -> None:
    exported = {
        name
        for name, value in vars(llmledger).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert exported == set(llmledger.__all__) - {"__version__"}
    for name in llmledger.__all__:
        assert getattr(llmledger, name) is not None


def test_core_imports_without_web_or_database_frameworks() -> None:
    import subprocess
    import sys

    code = (
        "import sys, llmledger.core.tokens, llmledger.core.pricing, llmledger.core.money;"
        "bad = [m for m in ('fastapi', 'sqlalchemy', 'starlette') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
