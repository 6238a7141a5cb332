"""The window and its parts: editor, detail pane, status bar, drop overlay, dialogs, tray."""
