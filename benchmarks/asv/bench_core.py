"""asv benchmarks of the core slice. asv treats lower as better, so accuracy is tracked as error."""

from cutbench.datasets import load_dataset
from cutbench.graph import Affinity, knn_graph
from cutbench.methods.ncut import Ncut
from cutbench.metrics import accuracy


class KnnGraph:
    params = [1000, 5000]
    param_names = ["n"]

    def setup(self, n):
        self.X = load_dataset("double_rings", n=n, random_state=0).X
        self.affinity = Affinity(sigma="median", n_neighbors=10)

    def time_knn_graph(self, n):
        knn_graph(self.X, self.affinity, device="cpu")


class NcutRings:
    def setup(self):
        self.data = load_dataset("double_rings", n=2000, random_state=0)

    def track_error(self):
        labels = Ncut(2, random_state=0, device="cpu").fit(self.data.X).labels_
        return 1.0 - accuracy(self.data.y, labels)

    track_error.unit = "1 - ACC"

    def time_fit(self):
        Ncut(2, random_state=0, device="cpu").fit(self.data.X)
