"""Document templates (Jinja2 HTML and CSS), shipped as package data so an installed `billing` finds them."""
