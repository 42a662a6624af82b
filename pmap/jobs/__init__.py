"""The job engine: leases on job rows, uploads kept in the database, and the dispatch of jobs to workers."""
