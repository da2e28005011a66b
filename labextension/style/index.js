import './base.css';
import './plot.css';
import './renderer.css';
