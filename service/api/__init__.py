"""HTTP blueprints; registered by ``service.app.create_app``."""
