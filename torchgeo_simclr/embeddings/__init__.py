"""Embeddings of every patch of a region, and search by example."""

from .embed import EmbedResult, embed_region
from .index import IndexInfo, IndexWriter, read_index, read_info
from .projection import embedding_map
from .search import EmbeddingIndex, SearchResult, load_index, search, top_k

__all__ = (
    "EmbedResult",
    "EmbeddingIndex",
    "IndexInfo",
    "IndexWriter",
    "SearchResult",
    "embed_region",
    "embedding_map",
    "load_index",
    "read_index",
    "read_info",
    "search",
    "top_k",
)
