"""Search drivers that are plugins (EDD co-search), one folder each."""
