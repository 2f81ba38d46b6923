"""Obfuscation of completions: the same behaviour or picture, unrecognisable text or file.

Images: :func:`obfuscate_image` (module ``_image``) writes a new file of the same picture.

Code: a worker (or a miner's script) must not be able to look a completion up, or match it to
the instruction variant it answers, by its text. :func:`obfuscate_files` rewrites a
completion's files so that

- JavaScript identifiers the code declares get fresh random names, consistently across
  every script of the completion (files and inline ``<script>``);
- comments are gone, from JavaScript, CSS, HTML and Python alike;
- formatting is normalised: canonical spacing and indentation, blank lines removed;
- what order does not matter for is shuffled: top-level function declarations (hoisted),
  declarations in a CSS rule (when no two touch the same property), HTML attributes, and
  the files of the completion;
- files other than the entry ``index.html`` get new names, with every reference updated;

and what it renders is unchanged: line breaks in JavaScript are kept (automatic semicolon
insertion depends on them), and names are left alone wherever renaming could change
meaning — properties, object keys, names also spelled in strings or in HTML event
attributes, and well-known browser globals.

Modules, each importing only those before it: ``_js_tokens`` (the tokenizer, script
analysis and renaming), ``_js_emit`` (JavaScript back to text), ``_css``, ``_python``, and
``_files`` (HTML and whole completions).

Usage::

    files = obfuscate_files(files, random.Random(seed))
"""

from commons.obfuscation._css import obfuscate_css
from commons.obfuscation._files import VOID_ELEMENTS as VOID_ELEMENTS
from commons.obfuscation._files import obfuscate_files
from commons.obfuscation._image import obfuscate_image, obfuscate_pixels
from commons.obfuscation._js_emit import emit_javascript as emit_javascript
from commons.obfuscation._js_emit import obfuscate_javascript
from commons.obfuscation._js_tokens import JS_GLOBALS as JS_GLOBALS
from commons.obfuscation._js_tokens import JS_KEYWORDS as JS_KEYWORDS
from commons.obfuscation._js_tokens import JavaScriptSource, ObfuscationError
from commons.obfuscation._js_tokens import Token as Token
from commons.obfuscation._js_tokens import rename_map as rename_map
from commons.obfuscation._js_tokens import tokenize_javascript as tokenize_javascript
from commons.obfuscation._python import obfuscate_python

__all__ = [
    "JavaScriptSource",
    "ObfuscationError",
    "obfuscate_css",
    "obfuscate_files",
    "obfuscate_image",
    "obfuscate_pixels",
    "obfuscate_javascript",
    "obfuscate_python",
]
