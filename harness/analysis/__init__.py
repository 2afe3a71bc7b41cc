"""Pure functions from stored records to numbers: summaries, timelines, CPU, GIL, statistics, comparisons.

Nothing here reads or writes a file: the pipeline loads a folder and passes its tables in.
"""
