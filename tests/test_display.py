"""Which Altair renderer a kernel ends up with: offline JupyterChart in an interactive kernel, static SVG
in the pipeline's batch kernels, whatever order distill_kit and altair are imported in."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers.paths import subprocess_env


def kernel_output(code: str, batch: bool) -> str:
    """Run ``code`` in a fresh ipykernel (the batch kernel's exec_lines when ``batch``); return its stdout."""
    from jupyter_client.manager import start_new_kernel

    from distill_kit.run.pipeline import BATCH_KERNEL_SETUP

    extra = [f"--InteractiveShellApp.exec_lines={BATCH_KERNEL_SETUP!r}"] if batch else []
    km, kc = start_new_kernel(kernel_name="python3", extra_arguments=extra, env=subprocess_env())
    try:
        out: list[str] = []
        reply = kc.execute_interactive(code, timeout=120, output_hook=lambda m: out.append(
            m["content"].get("text", "") if m["msg_type"] == "stream" else
            (m["content"]["ename"] + ": " + m["content"]["evalue"]) if m["msg_type"] == "error" else
            "display:" + ",".join(sorted(m["content"]["data"])) + "\n" if m["msg_type"] == "display_data" else ""))
        assert reply["content"]["status"] == "ok", "".join(out)
        return "".join(out)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.slow
@pytest.mark.parametrize("first", ["distill_kit", "altair"])
def test_interactive_kernel_renders_offline(first: str) -> None:
    other = "altair" if first == "distill_kit" else "distill_kit"
    code = (f"import {first}\nimport {other}\nimport altair as alt\n"
            "print(alt.renderers.active, alt.renderers.options)\n"
            "c = alt.Chart(alt.Data(values=[{'a': 1}])).mark_point().encode(x='a:Q', tooltip=['a:Q'])\n"
            "b = c._repr_mimebundle_()\nb = b[0] if isinstance(b, tuple) else b\n"
            "print(sorted(b))\nprint(alt.JupyterChart._is_offline, 'cdn.jsdelivr' in alt.JupyterChart._esm)\n")
    out = kernel_output(code, batch=False).split("\n")
    assert out[0].split()[0] == "distill_kit_offline"  # the offline JupyterChart plus a static SVG
    assert "application/vnd.jupyter.widget-view+json" in out[1] and "image/svg+xml" in out[1]  # an export shows the SVG
    assert out[2] == "True False"  # the bundled JavaScript, not a CDN import


WIDGET = ("from distill_kit.ice import probes as P\nfrom distill_kit.ice.widgets import ProbeEditor\n"
          "ProbeEditor(P.PROBES_FILE).show()\n")


@pytest.mark.slow
def test_batch_kernel_keeps_static_svg_and_tables() -> None:
    """Batch kernels: SVG charts, and widgets as static HTML only (no widget state for the rendered page)."""
    code = ("import distill_kit.ice.charts\nimport altair as alt\nprint(alt.renderers.active)\n"
            "from distill_kit.display import batch_kernel\nprint(batch_kernel())\n" + WIDGET)
    assert kernel_output(code, batch=True).split() == ["svg", "True", "display:text/html,text/plain"]


@pytest.mark.slow
def test_interactive_kernel_shows_widget_with_static_fallback() -> None:
    out = kernel_output(WIDGET, batch=False).split()
    assert out == ["display:application/vnd.jupyter.widget-view+json,text/html,text/plain"]


@pytest.mark.slow
def test_plain_python_is_untouched() -> None:
    """Scripts, the CLI and tests keep Altair's defaults (no kernel, no switch)."""
    code = "import distill_kit, altair as alt; print(alt.renderers.active)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["default"]
