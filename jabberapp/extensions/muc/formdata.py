"""
Reading submitted XEP-0004 forms (muc#request, muc#register): the values of their fields.
"""
from jabberapp.extensions.muc.config import NS_DATA


def form_values(form):
    """A data form's fields as a dict var -> list of values."""
    values = {}
    for field in form.iterchildren(f"{{{NS_DATA}}}field"):
        values[field.get("var")] = [v.text or "" for v in
                                    field.iterchildren(f"{{{NS_DATA}}}value")]
    return values


def form_type(form):
    """The FORM_TYPE value of a data form, or None."""
    return (form_values(form).get("FORM_TYPE") or [None])[0]
