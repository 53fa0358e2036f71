"""Record linkage between two cities by ECDH private set intersection over X25519: each city
hashes its identifiers onto the curve and multiplies them by a secret scalar of its own, the
other city multiplies them again by its scalar, and since the two products commute, equal
identifiers meet as equal points while neither city learns the other's identifiers outside the
intersection. `points` holds the arithmetic (hashing, blinding on every core), `tags` the data
owner's comparison tables.
"""
