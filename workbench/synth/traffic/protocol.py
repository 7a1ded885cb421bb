"""The protocol constants the generator's transactions are built from.

Program ids, the Raydium v4 pool accounts every swap names, and the instruction tags and
layouts of the programs the shapes invoke. Whatever the workbench already knows has one
home and is imported from it: program ids and mints from ``wire.keys``, the instruction tags
the decoders read from ``wire/programs/``. What only the generator writes (the OpenBook
market program, the Raydium authority, the tags of instructions nobody decodes) lives here.
"""

from ...wire.keys import program_address

# --- program ids and well-known accounts (base58) ---------------------------------------------
PROGRAM_SYSTEM = program_address("system")
PROGRAM_COMPUTE_BUDGET = program_address("compute_budget")
PROGRAM_TOKEN = program_address("spl_token")
PROGRAM_ATA = program_address("associated_token")
PROGRAM_OPENBOOK = "srmqPvymJeFKQ4zGQed1GFppgkRHL9kaELCbyksJtPX"  # market program of Raydium v4 pools
PROGRAM_VOTE = program_address("vote")
PROGRAM_MEMO = program_address("memo")
RAYDIUM_AMM_AUTHORITY = "5Q544fKrFoe6tsEbD7S8EmxGTJYAKtTVhAW5Q5pge4j1"  # PDA of "amm authority"
SYSVAR_RENT = "SysvarRent111111111111111111111111111111111"

# --- instruction tags ------------------------------------------------------------------------
# (Raydium v4 SwapBaseIn/Out and SPL Token Transfer: wire/programs/, RAY_SWAP_BASE_IN/OUT, TOKEN_TRANSFER)
TOKEN_CLOSE_ACCOUNT = 9        # u8 tag; accounts: account (w), destination (w), owner (s)
TOKEN_SYNC_NATIVE = 17         # u8 tag; accounts: native token account (w)
ATA_CREATE_IDEMPOTENT = 1      # u8 tag; payer (s,w), ata (w), owner, mint, system program, token program
VOTE_TOWER_SYNC = 14           # u32 tag; accounts: vote account (w), vote authority (s)
VOTE_LOCKOUTS = 31             # lockouts in a full tower (MAX_LOCKOUT_HISTORY)
