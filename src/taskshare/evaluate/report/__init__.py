"""Reports over the measures: terminal tables, Markdown, self-contained HTML pages with plots, and
`taskshare report` rebuilding them from a run's saved results. This layer writes files and sits above
training, transfer, multi-task and advise (it shows advice and task affinity)."""
