"""The Dojo validator: sends tasks to miners, scores them and sets weights."""
