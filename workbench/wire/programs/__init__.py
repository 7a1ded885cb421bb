"""Program instruction decoders: swaps, transfers and Jito tips as one table of events.

One module per program, as dpkt keeps one module per protocol; each holds its program's
tags or discriminators, data sizes, account layout (in its docstring, with the source it
was read from) and its decoder:

    raydium_amm_v4.py   Raydium AMM v4 SwapBaseIn/Out and their V2 forms
    raydium_cpmm.py     Raydium CPMM swap_base_input / swap_base_output
    orca_whirlpool.py   Orca Whirlpool swap / swap_v2
    system.py           System Transfer (a transfer to a Jito tip account is a tip)
    spl_token.py        SPL Token and Token-2022 Transfer / TransferChecked

and around them:

    events.py              the event row (EVENT_DTYPE), KIND_*, IX_*, F_* flags, EV_* rejects
    anchor.py              Anchor discriminators (sha256("global:<name>")[:8])
    account_resolution.py  static key or lookup-table entry; the snapshot's lookup tables;
                           the tip-account test
    dispatch.py            DECODERS, decode_events, decode_swaps, program_ids_of
    one_transaction.py     events_of(payload): the Python face for notebooks and tests

Every decoder reads one top-level instruction of a decoded transaction (``wire/txn.py``
rows) and writes zero or more rows of ``EVENT_DTYPE``. Detectors read only these rows, so
supporting one more DEX is one more module here and nothing else.

Rejects. Decoders never raise. An instruction of a known program whose tag or
discriminator is not one its module lists yields no event and no reject. One whose tag is
listed but whose data or accounts contradict the layout yields no event and bumps
``rejects[-code]`` with one of the ``EV_*`` codes of ``events.py``.

Adding a decoder (one more DEX): write a module ``<dex>.py`` with its layout and
``_decode_<dex>(buf, txn, luts, ins, k, pid, events, e)`` in the style of the others
(check ``data_sz`` and ``acct_cnt`` before reading; return events written or an ``EV_*``
code), give its program a fixed id in ``wire/keys.py`` ``KNOWN_PROGRAMS``, its ``IX_*``
kinds in ``events.py``, one ``elif pid == ID_<DEX>`` line to ``_decode_all`` and one row
to ``DECODERS`` in ``dispatch.py``; tests build its instructions with solders
(``tests/test_programs.py`` fails on a registered decoder without one).
"""
