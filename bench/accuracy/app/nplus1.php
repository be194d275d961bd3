<?php
// N+1: one query for a list, then the same query once per item (?n=20&ms=20).
require __DIR__ . '/truth.php';
AccTruth::begin('nplus1', 'ordinary');
$conn = pg_connect((string) getenv('BV_ACC_CONNINFO'), PGSQL_CONNECT_FORCE_NEW);
$n = isset($_GET['n']) ? (int) $_GET['n'] : 20;
$each = (isset($_GET['ms']) ? (int) $_GET['ms'] : 20) / 1000;
$ids = AccTruth::pg($conn, 'SELECT id FROM generate_series(1, ' . $n . ') AS id');
foreach ($ids as $row) {
    AccTruth::pg($conn, 'SELECT $1::int AS item, pg_sleep($2) AS lookup', array($row['id'], $each));
}
pg_close($conn);
