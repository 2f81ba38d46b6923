"""The Dojo domain shared by every process: protocol messages, scoring, API clients,
storage helpers and obfuscation. Imports ``template``, never ``dojo``."""
