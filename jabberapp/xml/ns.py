"""
XML namespace constants: every NS_* of jabberapp.namespaces, where they are defined (below the
jabberapp.xml package, so that jabberapp.errors can use them without importing the parser).
Add new constants there.
"""
from jabberapp.namespaces import *  # noqa: F401,F403 -- every NS_* constant
