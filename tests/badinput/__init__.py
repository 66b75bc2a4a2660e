"""The bad-input corpus: broken and hostile files and arguments run through the real command line."""
