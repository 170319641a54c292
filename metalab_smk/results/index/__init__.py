"""The PostgreSQL index (``metalab index``, ``load_results(URL)``, ``metalab ui --db``):
the only place with SQL.

* ``schema``: connection and tables;
* ``upkeep``: building and updating the index from the record files;
* ``query``: reading Results and the experiments list back;
* ``where_sql``: a parsed ``where=`` condition as SQL.
"""
