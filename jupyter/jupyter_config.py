# distill-kit's Jupyter configuration: `distill-kit lab` and `make setup` put this folder on Jupyter's
# config path (JUPYTER_CONFIG_PATH, and the virtual environment's etc/jupyter).
#
# HTML exports open offline -- `jupyter nbconvert --to html [--execute]` and JupyterLab's
# File > Save and Export Notebook As > HTML both read this: widget views give way to their static outputs
# (charts carry an SVG), and the page template loads no script from a CDN (distill_kit/nbexport.py).
import os

c = get_config()  # noqa: F821 (traitlets provides it)
c.HTMLExporter.extra_template_basedirs = [os.path.join(os.path.dirname(__file__), "nbconvert", "templates")]
c.HTMLExporter.template_name = "distill-offline"
c.HTMLExporter.preprocessors = ["distill_kit.nbexport.OfflineOutputs"]
# HTMLExporter's subclasses keep their own pages (config on a class reaches its subclasses)
c.SlidesExporter.template_name = "reveal"
c.SlidesExporter.preprocessors = []
