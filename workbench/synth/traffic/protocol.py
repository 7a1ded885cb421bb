"""The generator's own copy of the protocol constants its transactions are built from.

An independent twin of the decoders in ``wire/``, which the generated captures test: program
ids, the Raydium v4 pool accounts every swap names, and the instruction tags and layouts of
the programs the shapes invoke. The constants that have one home elsewhere are not copied:
the WSOL and USDC mints, the Raydium AMM v4 program id and the Jito tip accounts come from
``wire.keys`` (``MINT_WSOL``, ``MINT_USDC``, ``program_address("raydium_amm_v4")``,
``JITO_TIP_ACCOUNTS``).
"""

# --- program ids and well-known accounts (base58) ---------------------------------------------
PROGRAM_SYSTEM = "11111111111111111111111111111111"
PROGRAM_COMPUTE_BUDGET = "ComputeBudget111111111111111111111111111111"
PROGRAM_TOKEN = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
PROGRAM_ATA = "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL"    # Associated Token Account program
PROGRAM_OPENBOOK = "srmqPvymJeFKQ4zGQed1GFppgkRHL9kaELCbyksJtPX"  # market program of Raydium v4 pools
PROGRAM_VOTE = "Vote111111111111111111111111111111111111111"
PROGRAM_MEMO = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"
RAYDIUM_AMM_AUTHORITY = "5Q544fKrFoe6tsEbD7S8EmxGTJYAKtTVhAW5Q5pge4j1"  # PDA of "amm authority"
SYSVAR_RENT = "SysvarRent111111111111111111111111111111111"

# --- instruction tags ------------------------------------------------------------------------
RAYDIUM_SWAP_BASE_IN = 9       # u8 tag, u64 amount_in, u64 minimum_amount_out (18 accounts)
RAYDIUM_SWAP_BASE_OUT = 11     # u8 tag, u64 max_amount_in, u64 amount_out (18 accounts)
TOKEN_TRANSFER = 3             # u8 tag, u64 amount; accounts: source (w), destination (w), owner (s)
TOKEN_CLOSE_ACCOUNT = 9        # u8 tag; accounts: account (w), destination (w), owner (s)
TOKEN_SYNC_NATIVE = 17         # u8 tag; accounts: native token account (w)
ATA_CREATE_IDEMPOTENT = 1      # u8 tag; payer (s,w), ata (w), owner, mint, system program, token program
VOTE_TOWER_SYNC = 14           # u32 tag; accounts: vote account (w), vote authority (s)
VOTE_LOCKOUTS = 31             # lockouts in a full tower (MAX_LOCKOUT_HISTORY)
