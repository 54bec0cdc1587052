"""IVR flows: menus, prompts, digit collection and actions."""
