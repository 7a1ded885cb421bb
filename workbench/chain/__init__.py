"""Real chain data in: account layouts decoded at the edge, and market snapshots over JSON-RPC.

One module per account layout (raydium_amm_v4, raydium_cpmm, whirlpool, spl_token, token_2022,
lookup_table), each a numpy structured dtype whose offsets are the program's, with the field's
unit and range beside it; account.py checks owner, size and discriminator before decoding
and names the account in every error (ChainError). pda.py derives program addresses.
rpc.py is the JSON-RPC client, market.py turns pools into the snapshot's rows; the runner
(runner/chain_snapshot.py) writes them as the engine's snapshot folder.

Layer: above wire/ (it reuses the program ids of wire/keys.py), never importing the engine.
"""
