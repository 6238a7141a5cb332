"""The jobs table: its rows and model, sorting and filtering, the view and its progress bars."""
