<?php
// Slow in PHP, not in the database: two short statements around ?php=ms of PHP work.
require __DIR__ . '/truth.php';
AccTruth::begin('php_slow', 'ordinary');
$conn = pg_connect((string) getenv('BV_ACC_CONNINFO'), PGSQL_CONNECT_FORCE_NEW);
AccTruth::pg($conn, 'SELECT count(*) AS before_work FROM generate_series(1, 1000)');
usleep((isset($_GET['php']) ? (int) $_GET['php'] : 400) * 1000);
AccTruth::pg($conn, 'SELECT count(*) AS after_work FROM generate_series(1, 1000)');
pg_close($conn);
