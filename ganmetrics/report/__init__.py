"""Reports people look at: one self-contained HTML page per evaluation (``eval --report``,
``ganmetrics report RESULTS.json...``) or training run (``RUN_DIR/report.html``).

An evaluation's page (``evaluation.py``), drawn from ``eval``'s JSON rows alone (``results.py``)
and the sources they name, where those still exist:

- the results of every SOURCE_B, each with its ``--ci`` interval, the encoder it ran on, every
  encoder's options and weights (uncalibrated weights in red) and every gate's verdict;
- each metric across the SOURCE_Bs in the given order with its interval (``plot.py``, the figure
  of ``eval --plot``);
- a seeded sample grid of each side (``thumbnails.py``);
- for each details entry ``<name>_pairs`` (``memorisation``'s closest pairs), the pairs side by
  side with their distance. The format: a list of ``[generated index, reference index,
  distance]``, closest first, the indices 0-based in the order the sides' images are read
  (sorted paths, after ``--limit``), the distance a float in the encoder's feature units;
- the settings, versions and the exact command line.

Size: every image but the plots is at most ``thumbnails.THUMBNAIL_PIXELS`` (64) pixels a side
and ``thumbnails.THUMBNAIL_BYTES`` (6 KiB) as a file (8 KiB in the page, base64), so a page of
S sides at an N×N grid and P pairs holds at most (S·N² + 2·P)·8 KiB of thumbnails, e.g. 1 MiB
for a reference and one generated set at 8×8, beside its plot (tens of KiB a panel).

``COMMAND_LINE`` is the click context ``meta`` key under which the command-line group records
the words of the running command (``cli.GanMetricsGroup.resolve_command``), for the page.
"""

COMMAND_LINE = "ganmetrics.command_line"
