"""Documentation signposting: an index of a desk's documentation pages, searched per enquiry. Pure: no I/O.

    pages, skipped = read_pages(Path("config/docs"))         # config.docs_pages: the files (folder or sitemap)
    index = DocsIndex.from_pages(pages, skipped=skipped)      # or workers.intake.docs_index.build_index(source)
    save_index(index, settings.resolved_docs_index)           # workers.intake.docs_index: the index on disk
    found = index.signpost(subject + "\\n" + body, language=ticket.language)
    ticket.suggestions, ticket.docs_gap = found.to_json(), found.gap

Modules, one concept each:

- ``pages``: the page values a loader hands in (``Page``, ``Skipped``), and ``language_code``;
- ``tokens``: words, stop words, Snowball stems per language (PyStemmer);
- ``bm25`` and ``lsa``: the two rankers; ``rankers``: their contract, registry, gap thresholds and the
  measured default (the measurements are in its docstring);
- ``arrays``: float32 and int32 arrays in a ranker's JSON state;
- ``index``: ``DocsIndex`` (search, gap, JSON form); ``suggestions``: what a ticket stores;
- ``errors``: the error tree.
"""
