"""What a POST of the challenge admin carries besides the challenge's own fields.

The challenge's page has inlines (its files and hints): Django's formsets refuse a POST
without their management forms. A test that posts the form the way a browser does adds
these (no inline rows).
"""

INLINES = ("files", "hints")

NO_INLINE_ROWS = {
    f"{prefix}-{name}": value
    for prefix in INLINES
    for name, value in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"), ("MIN_NUM_FORMS", "0"), ("MAX_NUM_FORMS", "1000"))
}
