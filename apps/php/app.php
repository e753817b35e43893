<?php
// The PHP sample app, run by php-cgi (FastCGI on fd 0) or php-fpm. Endpoints are the
// same as every sample app's (apps/README.md), chosen by the last PATH_INFO segment:
// /app.php/hello, /app.php/env, ...
$path = $_SERVER['PATH_INFO'] ?? '';
if ($path === '' || $path === '/') { $path = $_SERVER['SCRIPT_NAME'] ?? ''; }
$parts = explode('/', rtrim($path, '/'));
$ep = end($parts);
if ($ep === 'app.php') { $ep = 'hello'; }

switch ($ep) {
case 'hello':
    header('Content-Type: text/plain');
    echo "Hello from PHP\n";
    break;
case 'env':
    header('Content-Type: application/json');
    $env = [];
    foreach ($_SERVER as $k => $v) { if (is_string($v)) { $env[$k] = $v; } }
    echo json_encode($env, JSON_UNESCAPED_SLASHES), "\n";
    break;
case 'echo':
    $ctx = hash_init('sha256');
    $in = fopen('php://input', 'rb');
    $total = 0;
    while (!feof($in)) {
        $chunk = fread($in, 65536);
        if ($chunk === false || $chunk === '') { break; }
        hash_update($ctx, $chunk);
        $total += strlen($chunk);
    }
    header('Content-Type: application/json');
    echo json_encode(['length' => $total, 'sha256' => hash_final($ctx)]), "\n";
    break;
case 'sleep':
    $ms = intval($_GET['ms'] ?? 100);
    usleep($ms * 1000);
    header('Content-Type: text/plain');
    echo "slept $ms ms\n";
    break;
case 'stream':
    header('Content-Type: application/octet-stream');
    $n = intval($_GET['bytes'] ?? 1024);
    $block = '';
    for ($i = 0; $i < 65000 + 26; $i++) { $block .= chr(97 + $i % 26); }
    for ($sent = 0; $sent < $n; $sent += $size) {
        $size = min(65000, $n - $sent);
        echo substr($block, $sent % 26, $size);
        flush();
    }
    break;
case 'status':
    $code = intval($_GET['code'] ?? 200);
    http_response_code($code);
    header('Content-Type: text/plain');
    if (isset($_GET['name'], $_GET['value'])) { header($_GET['name'] . ': ' . $_GET['value']); }
    echo "status $code\n";
    break;
case 'stderr':
    error_log('a line on stderr from the PHP app');
    header('Content-Type: text/plain');
    echo "wrote to stderr\n";
    break;
default:
    http_response_code(404);
    header('Content-Type: text/plain');
    echo "no endpoint $ep\n";
}
