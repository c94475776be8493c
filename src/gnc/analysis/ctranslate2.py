"""CTranslate2 reader (moved to :mod:`gnc.pretrained.ctranslate2`; re-exported here)."""

from gnc.pretrained.ctranslate2 import (
    CTranslate2Variable,
    list_ctranslate2_variables,
    read_ctranslate2_variable,
)

__all__ = ["CTranslate2Variable", "list_ctranslate2_variables", "read_ctranslate2_variable"]
