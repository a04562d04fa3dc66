import ringtest_not_installed_anywhere  # noqa: F401
