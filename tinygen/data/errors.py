"""The one exception type of tinygen.data.

Every problem with a data file on disk (missing, truncated, corrupt, the wrong shape)
raises DataError with a message that names the file and says what is wrong with it, so
that a user can fix it without reading this package. It subclasses ValueError because a
bad file is a bad value: code that already catches ValueError keeps working.
"""


class DataError(ValueError):
    """A data file or data set is missing, malformed, or not what was expected."""
