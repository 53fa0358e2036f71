"""Trust: keys, the region's PKI, the signed manifest, members' credentials, request tokens,
receipts, and the Merkle tree of audit checkpoints."""
