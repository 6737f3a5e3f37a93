import sys
from pathlib import Path

# Lets test modules import the shared-data loader as `shared_data`.
sys.path.insert(0, str(Path(__file__).resolve().parent))
